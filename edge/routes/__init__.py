"""One blueprint per module; ``edge.app`` registers them all."""
