#!/bin/sh
# The seed article's examples, corrected, as one-liners.
# Run: sh samples/seed.sh   (each line's expected exit status is in its comment)

# The square, x*x at 2.0: gradient 4 and value 4, Hessian 2, JVP (4, 4) with tangent 1.
diffcli grad "x*x" --at x=2.0                                  # exit 0
diffcli value "x*x" --at x=2.0                                 # exit 0
diffcli hessian "x*x" --at x=2.0                               # exit 0
diffcli jvp "x*x" --at x=2.0 --tangent 1                       # exit 0

# Several points at once, in one batched (vmap) call.
diffcli grad "x*x" --at x=1 --at x=2 --at x=-3.5               # exit 0

# "Square if even", as a conditional: x**2 on the even integers, x elsewhere. At 3 the
# derivative is 1; at 2 the function jumps (from x to 4), so it has none: undefined.
diffcli grad "x**2 if Mod(x, 2) == 0 else x" --at x=2 --at x=3  # exit 0

# Where autodiff is wrong: x*sqrt(x) has derivative 0 at 0, torch says NaN.
diffcli grad "x*sqrt(x)" --at x=0                              # exit 1

# Where there is no derivative to check: sqrt'(0) is infinite.
diffcli grad "sqrt(x)" --at x=0                                # exit 0

# The branch not taken contributes nothing: at -1 the gradient is 0, not NaN. At 0 the
# pieces meet with slopes 0 and +inf: no derivative, undefined (torch's 0 is not judged).
diffcli grad "Piecewise((sqrt(x), x > 0), (0, True))" --at x=-1 --at x=0  # exit 0

# The derivative of the function, not of the piece taken: x everywhere, so 1 at 0 (torch: 0).
diffcli grad "x if x != 0 else 0" --at x=0                     # exit 1

# Beyond float64's range, still defined: log(exp(x)) is 710 at 710 (torch: inf).
diffcli value "log(exp(x))" --at x=710                         # exit 1

# Typeset math, as pasted from a paper: the minus sign, superscripts, √ and π.
diffcli grad "√(x² + y²) − π·x⁻¹" --at x=3,y=4                # exit 0

# Math as written on paper: a space multiplies, |x| is the absolute value, ½ is a number.
diffcli grad "½ m v² + m g |h|" --at m=2,v=3,g=9.81,h=-1         # exit 0
diffcli grad "-x sin(x)" --at x=1                              # exit 0

# log1p and expm1 are accurate near 0, where log(1 + x) has no digits left.
diffcli value "log1p(x)/x" --at x=1e-12                        # exit 0
diffcli value "log(1 + x)/x" --at x=1e-12                      # exit 1

# Vector-valued expressions: the Jacobian of polar coordinates, and c·J for a cotangent c.
diffcli jacobian "[r cos(t), r sin(t)]" --at r=2,t=0.5            # exit 0
diffcli vjp "[x y, x + y]" --at x=1,y=2 --cotangent 1,-1          # exit 0
# Reverse mode spreads f₂'s infinite derivative at 0 into f₁'s row (NaN): a mismatch.
diffcli jacobian "[x y, sqrt(x)]" --at x=0,y=1 --mode reverse     # exit 1

# Derivatives of any order: d³/dx²dy of x³y² is 12xy; Taylor coefficients of exp(sin x) at 0.
diffcli diff "x^3 y^2" --at x=1,y=2 --wrt x:2,y                 # exit 0
diffcli taylor "exp(sin(x))" --at x=0 --order 6                 # exit 0
# |x|³ has a second derivative at 0 (6|x| = 0) but no third: one-sided -6 and 6.
diffcli diff "abs(x)^3" --at x=0 --wrt x:3                      # exit 0

# Loops, differentiated through: 50 Newton steps for sqrt(2) (derivative 1/(2 sqrt(2))), and
# the Hessian of a partial sum of exp's series on a grid.
diffcli grad "iterate((s + x/s)/2, s, 1, 50)" --at x=2          # exit 0
diffcli hessian "sum(x^k/factorial(k), k, 0, 20)" --grid x=-1:1:5  # exit 0
