"""Faust tables of the speed layer and the HTTP views that read them."""
