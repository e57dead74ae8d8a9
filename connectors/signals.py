"""Signals apps above the connectors (pipelines) follow, without this app importing them."""

from django.dispatch import Signal

# Sent inside the transaction of a rename, after the row is saved, so what
# receivers write commits or rolls back with it; kwargs connection,
# old_name, actor (an accounts.actor.Actor).
connection_renamed = Signal()
