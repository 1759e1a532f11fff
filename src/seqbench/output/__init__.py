"""Output, named by what it makes: figures as text (text.py), tables as text (layout.py,
tables.py, scaling.py), the terminal's Rich rendering of them (terminal.py, with cli/ the
only code that imports Rich), and plots (plots.py). Exporters are in seqbench.export."""
