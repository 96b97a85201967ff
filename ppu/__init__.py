"""The CLI (`ppu`) and the composition root: commands that wire settings, pools and clients and run the rest."""
