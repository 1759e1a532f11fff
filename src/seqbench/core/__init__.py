"""The shared contract every other package builds on, and which imports nothing else of
seqbench: the row (`schema`), the settings (`settings`), the request (`request`), the
errors a user can cause (`errors`), clocks (`timing`) and devices (`devices`)."""
