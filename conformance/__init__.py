"""iospec's conformance suites: scenarios any Workers-compatible runtime can be checked against."""
