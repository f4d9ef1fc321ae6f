"""Generated conversations with a target, played through the drivers and judged by the model."""
