"""Everything that exists only to run the service without AWS; production code never imports it."""
