"""R2 (Mescheder 2018; Huang 2024's R3GAN pairs it with R1): γ/2·E_fake[‖∇_x V(x)‖²], the zero-centred
gradient penalty at generated data; optionally lazy (every N D steps, scaled by N)."""

from gan_lab.regularizers.r1 import R1


class R2(R1):
    name = "r2"
    on_fake = True
