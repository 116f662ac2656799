"""One module per `grade` command; grader/cli.py registers them."""
