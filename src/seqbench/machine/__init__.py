"""The machine the numbers come from: what Linux says about the CPUs and other work on them
(`system`), how busy it is now and what threatens a measurement (`look`), the environment
recorded with a run and the process settings that shape it (`env`), and how a worker
process is started (`launch`). Nothing here judges a number (that is `seqbench.judge`)."""
