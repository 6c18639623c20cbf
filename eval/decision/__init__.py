"""Decide: criteria results and the go/no-go recommendation."""
