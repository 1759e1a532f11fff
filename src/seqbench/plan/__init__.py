"""What a run measures: the one frozen configuration (`config`), the suite-file format
and the rule each value obeys (`suites`), the rules between values (`combined`), and the
searches whose next cell depends on the
last one's answer (`frontier`)."""
