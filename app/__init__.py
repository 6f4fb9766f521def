"""socialstream: a stream-first social network backend."""
