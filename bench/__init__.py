"""`make bench`: the figures users compare us on (issue 7), as a table on stdout and JSON under bench/results/."""
