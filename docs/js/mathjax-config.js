// Maths in the pages and docstrings is marked up by pymdownx.arithmatex (generic mode); a
// site that loads MathJax renders it, and without MathJax it stays readable TeX.
window.MathJax = {tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]]}};
