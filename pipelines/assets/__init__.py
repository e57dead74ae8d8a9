"""Assets: the tables and files pipelines write, their events, and who waits for them (SPEC §8).

- ``names``: an asset's name from a connection and a table (the schema is
  always there);
- ``events``: recording the events of a task run that succeeded;
- ``selectors``: assets, their events, producers and consumers, as a user
  may see them (through the asset's connection).

Starting the pipelines that wait for assets is the scheduler's
(``pipelines.services.schedule``).
"""
