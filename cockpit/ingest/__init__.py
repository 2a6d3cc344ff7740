"""Turning a batch of one input stream into one atomic :class:`cockpit.apply.Batch`."""
