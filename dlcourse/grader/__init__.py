"""Grader side: verdicts decided in the grader's own process."""
