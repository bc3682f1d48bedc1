"""What the search and retraining loops share: the epoch driver, the evaluation, the progress bar,
the one-off compile of an initialiser."""
