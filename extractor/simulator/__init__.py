"""A faithful offline 12Twenty: data, HTTP app, limits, faults and the simulate command."""
