"""What a run measures: the one frozen configuration (`config`), the suite-file format
and the rule each value obeys (`suites`), and the searches whose next cell depends on the
last one's answer (`frontier`)."""
