"""Copies of the record for analytics elsewhere (ClickHouse); the relational store stays the record."""
