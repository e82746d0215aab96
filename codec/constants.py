"""Numeric constants of the bit-exact probability path, in one place.

Changing any value here changes the bitstream: bump the model id, never edit in place.
"""

# Entropy coding alphabet: every latent symbol (hyper-latent z and latent y) is clamped to
# [-SYMBOL_MAX, SYMBOL_MAX] and coded with one of the Gaussian tables below.
SYMBOL_MAX = 1023
ALPHABET_SIZE = 2 * SYMBOL_MAX + 1

# Integer CDF tables: each row is the frequency of every symbol, summing to 2**CDF_PRECISION.
# 24 bits is the native model precision of constriction's ANS and range coders; every symbol gets at
# least frequency 1, so any clamped value stays codable (at <= 24 bits).
CDF_PRECISION = 24

# Scale table: NUM_SCALES zero-mean Gaussians with log-spaced standard deviations from
# SCALE_MIN to SCALE_MAX (latent units). Networks predict a table index, never a float scale.
NUM_SCALES = 64
SCALE_MIN = 0.11
SCALE_MAX = 256.0

# Fixed-point formats of the integer hyper-decoder (see intnet.py). Values are integers
# carried in float64; the bounds keep every partial sum of a layer below 2**53 so the result
# is exact in any summation order, thread count, SIMD width or device.
WEIGHT_FRAC_BITS = 12   # weights: w_int = round(w * 2**12) fits int16 since |w| < 2**3
ACT_FRAC_BITS = 10      # activations: a_int = a * 2**10
ACT_MAX = 2 ** 11       # activations (and hyper-latent inputs) clamped to [-2**11, 2**11] units
WEIGHT_MAX = 2 ** 3
EXACT_LIMIT = 2 ** 53

# Quality is stored in the file as a fixed-point rate position with this many fraction bits.
RATE_FRAC_BITS = 8

# Encoder effort levels: 0..MAX_EFFORT (what each level does is the family encoder's business).
MAX_EFFORT = 3
