"""Exact Thompson-sampling probabilities and a chi-square test, in plain Python."""
import math


def beta_pdf(x, a, b):
    if x <= 0.0 or x >= 1.0:
        return 0.0
    return math.exp((a - 1) * math.log(x) + (b - 1) * math.log1p(-x)
                    + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))


def thompson_first_pick(params, n=20000):
    """P(arm i has the largest Beta draw) = ∫ f_i(x) Π_{j≠i} F_j(x) dx, by the midpoint
    rule on n cells with the CDFs accumulated on the same grid."""
    h = 1.0 / n
    xs = [(i + 0.5) * h for i in range(n)]
    pdfs = [[beta_pdf(x, a, b) for x in xs] for a, b in params]
    cdfs = []
    for pdf in pdfs:
        total, acc, cdf = sum(pdf) * h, 0.0, []
        for p in pdf:
            # CDF at the cell's midpoint, normalised so that F(1) = 1 exactly.
            cdf.append((acc + p * h / 2) / total)
            acc += p * h
        cdfs.append(cdf)
    probs = []
    for i in range(len(params)):
        s = 0.0
        for c in range(n):
            prod = pdfs[i][c]
            for j in range(len(params)):
                if j != i:
                    prod *= cdfs[j][c]
            s += prod
        probs.append(s * h / (sum(pdfs[i]) * h))
    z = sum(probs)
    return [p / z for p in probs]


def chi2_sf(x, dof):
    """Survival function of the chi-square distribution (regularised upper gamma Q(k/2, x/2))."""
    a, x = dof / 2.0, x / 2.0
    if x <= 0:
        return 1.0
    if x < a + 1:  # series for P, then Q = 1 - P
        term = total = 1.0 / a
        n = a
        while abs(term) > 1e-15 * abs(total):
            n += 1
            term *= x / n
            total += term
        return 1.0 - total * math.exp(-x + a * math.log(x) - math.lgamma(a))
    # continued fraction for Q (Lentz)
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    f = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        f *= delta
        if abs(delta - 1) < 1e-15:
            break
    return f * math.exp(-x + a * math.log(x) - math.lgamma(a))


def chi_square_p(observed, probs):
    n = sum(observed)
    stat = sum((o - n * p) ** 2 / (n * p) for o, p in zip(observed, probs))
    return chi2_sf(stat, len(observed) - 1)
