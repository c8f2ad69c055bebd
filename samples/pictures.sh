#!/bin/sh
# Pictures: `diffcli plot` (needs matplotlib: pip install "diffcli[plot]") and a batch's HTML report.
# Run from the repository's top: sh samples/pictures.sh   (each line's exit status is in its comment)

# Where autodiff parts from the truth: d/dx x sqrt(x^2) = 2|x| is 0 at 0, torch says NaN there
# (a red cross); log(x + 2) has no value left of -2 (grey).
diffcli plot "x sqrt(x^2) + log(x + 2)" --grid x=-3:2:201 --checks value,grad,hessian --out kink.png  # exit 1

# Two variables: heatmaps of the gradient and of log10 of its error, the mismatch at the origin crossed.
diffcli plot "x y sqrt(x^2 + y^2)" --grid x=-1:1:41 --grid y=-1:1:41 --checks grad --out map.png  # exit 1

# sin and its Taylor polynomials of orders 1 to 9 around 0, as SVG.
diffcli plot "sin(x)" --taylor --at x=0 --order 9 --grid x=-7:7:301 --out taylor.svg  # exit 0

# A batch's report, every status in it: open report.html in a browser (it works offline).
diffcli batch samples/report.toml --html report.html  # exit 1
