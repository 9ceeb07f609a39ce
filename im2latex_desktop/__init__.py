"""im2latex desktop app: snip a formula anywhere on the screen, get its LaTeX.

Subpackages, one per concern, each chosen by capability at run time: ``screenshot`` (mss, Qt
fallback), ``clipboard`` (pyperclip, Qt fallback), ``hotkey`` (pynput, when the desktop allows),
``gui`` (windows and widgets).  ``worker`` runs the recognizer off the UI thread.
"""

__version__ = "0.1.0"
