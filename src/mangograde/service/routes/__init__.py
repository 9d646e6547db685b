"""The service's routes by subject: grading, lots and corrections, operations."""
