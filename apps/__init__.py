"""The seqapps applications: sentiment, translation, lm. Each is `python -m apps.<name>`."""
