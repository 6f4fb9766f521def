"""HTTP API of the transactional layer, served by the Faust worker's web server."""
