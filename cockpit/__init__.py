"""cockpit package."""
