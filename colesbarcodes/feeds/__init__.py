"""The listing crawl's feed exports: one product inbox file per store and run, written
under a name the loader does not take until it is complete."""
