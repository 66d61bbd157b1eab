"""Documents for every front end. Imports neither torch nor any UI library."""
