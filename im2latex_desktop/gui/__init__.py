"""Qt widgets: main window, snipping overlay, result view, history panel, settings dialog, tray."""
