"""Pure nn.Modules: generator / discriminator pairs sized from a DataSpec by arithmetic.

A model factory has the signature ``build(spec, z_dim, d_norm, ...) -> (generator, discriminator)``.
Every discriminator maps (N, *shape) to logits (N,) and exposes ``features(x)`` -> (N, F), the
layer below its head (feature matching and minibatch discrimination hook in there).
"""
