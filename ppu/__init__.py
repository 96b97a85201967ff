"""PPU meter lookup and rebroadcasting: CLI, settings and composition root."""
