"""What operators do through the console and the CLI alike.

Tenancy (what an institution may see and change), the meter view, command results.
"""
