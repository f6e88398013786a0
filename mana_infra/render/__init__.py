"""Pure renderers: typed data in, file text out. No Pulumi here, so the lab and the tests run their output as is."""
