"""Provider integrations: simulators of provider behaviour (and, later, the HTTP bridge)."""
