"""Looking at runs: the search report and its figures, the workdir scan and the results table."""
