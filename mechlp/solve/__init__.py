"""The questions (:mod:`mechlp.solve.questions`), the Lemma 6 recursion, second best, the intermediate
mechanism, critical values and the result contract."""
