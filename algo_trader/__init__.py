"""algo_trader: research workbench for systematic trading."""
