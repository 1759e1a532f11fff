"""Judgement over measured numbers, importing neither torch nor pandas: statistics
(`stats`), when a timing cannot be trusted (`noise`), a change's verdict (`verdicts`,
`compare`, `gate`), accuracy over seeds and rates (`accuracy`), growth with length
(`scaling`), and a cell's history over commits (`history`, `changepoints`)."""
