"""The kernel: settings, errors, topic names, logs, database and Kafka connections.

It is the bottom layer: it imports no other package of ours.
"""
