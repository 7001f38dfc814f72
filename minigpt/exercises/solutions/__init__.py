"""Reference solutions of the course's exercises, one module per notebook.

The notebooks do not show these; they import one only to go on when an exercise is not done
yet. Try the exercise first: the checks' hints are there to get you unstuck.
"""
