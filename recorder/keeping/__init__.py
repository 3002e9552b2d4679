"""Keeping recordings: retention (purge), legal holds, and tamper evidence (custody, verify).

docs/keeping.md explains it for the firm's IT and counsel; migrations/0006_keeping.sql holds
the tables and the rules the database itself enforces.
"""
