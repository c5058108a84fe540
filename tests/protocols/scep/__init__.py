"""SCEP front-end tests (a package so module basenames may repeat across protocols)."""
