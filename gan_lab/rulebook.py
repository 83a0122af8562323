"""The rulebook: every "A is not allowed with B" of the lab, one entry each (gan_lab/rules.py says what a rule is),
and every reason a step stays eager under CUDA graphs. Each entry carries an example command line that breaks it;
tests/test_rules.py runs them all.
"""

from __future__ import annotations

from gan_lab.errors import ConfigError
from gan_lab.rules import Setup, rule

LABELLED_SETS = ("mnist5k, digits, mnist, fashion_mnist, cifar10, stacked_mnist, a folder with one subfolder per "
                 "class, a zip whose dataset.json has labels")
# Trick hooks a class-conditional step cannot serve: they call D or G without the labels.
UNLABELLED_HOOKS = {"networks": "wraps G or D in a network of its own", "g_loss": "replaces G's loss",
                    "critic": "judges with a copy of D"}


# ---------------------------------------------------------------- where the run executes

@rule("CUDA graphs without a CUDA device", ("train.cuda_graphs=true",), "train.cuda_graphs")
def _graphs_need_cuda(s: Setup):
    accelerator = s.settings.trainer.accelerator
    if s.settings.train.cuda_graphs is True and accelerator not in ("gpu", "cuda"):
        return ConfigError("train.cuda_graphs", True, f"false with trainer.accelerator={accelerator}",
                           "CUDA graphs need a CUDA device (accelerator=gpu|ddp|slurm); train.cuda_graphs=stand_in "
                           "runs the capture-ready step here without capturing.")


@rule("compiling G on a GPU", ("train.compile_generator=true", "trainer.accelerator=gpu"), "train.compile_generator")
def _compile_on_cpu(s: Setup):
    accelerator = s.settings.trainer.accelerator
    if s.settings.train.compile_generator and accelerator in ("gpu", "cuda"):
        return ConfigError("train.compile_generator", True, f"false with trainer.accelerator={accelerator}",
                           "torch.compile of G crashed on CUDA when measured (H200, torch 2.11); on a GPU use "
                           "train.cuda_graphs=true, which removes the per-kernel launch cost compile would.")


@rule("simultaneous updates with fp16's loss scale", ("train.simultaneous=true", "trainer.precision=16-mixed"),
      "train.simultaneous")
def _simultaneous_scale(s: Setup):
    precision = str(s.settings.trainer.precision)
    if s.settings.train.simultaneous and precision in ("16-mixed", "16"):
        return ConfigError("train.simultaneous", True, f"false with trainer.precision={precision}",
                           "fp16's loss scale can change at D's step while G's scaled gradient waits; use "
                           "trainer.precision=bf16-mixed, which needs no loss scale.")


@rule("simultaneous updates with several G steps", ("train.simultaneous=true", "train.g_steps=2"), "train.g_steps")
def _simultaneous_g_steps(s: Setup):
    g_steps = s.settings.train.g_steps
    if s.settings.train.simultaneous and g_steps > 1:
        return ConfigError("train.g_steps", g_steps, "1 with train.simultaneous=true",
                           "a simultaneous update takes G's one gradient against the iteration's starting D.")


@rule("CUDA graphs with fp16's loss scale", ("train.cuda_graphs=stand_in", "trainer.precision=16-mixed"),
      "train.cuda_graphs")
def _graphs_scale(s: Setup):
    precision = str(s.settings.trainer.precision)
    graphs = s.settings.train.cuda_graphs
    if graphs and precision in ("16-mixed", "16"):
        return ConfigError("train.cuda_graphs", graphs, f"false with trainer.precision={precision}",
                           "a captured update calls backward and the optimiser step directly, outside the loss "
                           "scaler fp16 needs; use trainer.precision=bf16-mixed, which needs no loss scale.")


@rule("fp16 with a gradient penalty", ("regularizer=gp", "loss=wasserstein", "trainer.precision=16-mixed"),
      "trainer.precision")
def _fp16_penalty(s: Setup):
    precision = str(s.settings.trainer.precision)
    if precision in ("16-mixed", "16") and s.regularizer.caps.input_gradients:
        return ConfigError("trainer.precision", precision,
                           f"32-true or bf16-mixed with regularizer={s.regularizer.name}",
                           "the penalty's double backward overflows fp16's range (NaN); bf16 has fp32's range.")


@rule("fp16 on a CPU", ("trainer.precision=16-mixed",), "trainer.precision")
def _fp16_cpu(s: Setup):
    precision = str(s.settings.trainer.precision)
    if precision in ("16-mixed", "16") and s.settings.trainer.accelerator == "cpu":
        return ConfigError("trainer.precision", precision, "32-true or bf16-mixed on a CPU (trainer.accelerator=cpu)",
                           "CPU autocast computes in bf16, so a 16-mixed run would train in bf16 while its config "
                           "says fp16; say bf16-mixed.")


@rule("data on the device that is not held in memory", ("model=mlp", "dataset=ring", "train.data_on_device=true"),
      "train.data_on_device")
def _data_on_device(s: Setup):
    if s.settings.train.data_on_device is True and getattr(s.source, "data", None) is None:
        return ConfigError("train.data_on_device", True, "false or auto for this data set",
                           f"{s.spec.name} is not held in memory as one tensor (a law sampled afresh, or image files "
                           "decoded per minibatch)")


@rule("a network that does not fit the data's shape", ("dataset=ring",), "model")
def _net_fits(s: Setup):
    return s.model_fits(s.spec) if s.model_fits is not None else None


# ---------------------------------------------------------------- the objective

@rule("label smoothing with a loss that does not take it", ("loss=hinge", "loss.label_smoothing=0.1"),
      "loss.label_smoothing")
def _label_smoothing(s: Setup):
    if s.loss.label_smoothing and not s.loss.caps.label_smoothing:
        return ConfigError("loss.label_smoothing", s.loss.label_smoothing, "0 with loss=" + s.loss.name,
                           "One-sided label smoothing applies only to the sigmoid-BCE losses (loss=minimax, loss=ns).")


@rule("AC-GAN's class weight without AC-GAN", ("loss.aux_weight=2",), "loss.aux_weight")
def _aux_weight(s: Setup):
    if s.loss.aux_weight is not None and s.conditional != "acgan":
        return ConfigError("loss.aux_weight", s.loss.aux_weight, f"null with model.conditional={s.conditional}",
                           "The class cross-entropy weight belongs to AC-GAN (model.conditional=acgan).")


# ---------------------------------------------------------------- the system and what its step runs

@rule("a mixture of a model with its own training step", ("model=lapgan", "dataset=digits", "mixture.generators=2"),
      "mixture.generators")
def _mixture_of_own_step(s: Setup):
    m = s.settings.mixture
    if s.own_system and (m.generators > 1 or m.discriminators > 1):
        key, value = ("mixture.generators", m.generators) if m.generators > 1 else \
            ("mixture.discriminators", m.discriminators)
        return ConfigError(key, value, "1 with this model", f"model={s.model} has its own training step; MIX+GAN "
                                                             "mixes models trained by Algorithm 1 (mlp, dcgan).")


@rule("class labels with a step that passes none", ("model=lapgan", "dataset=digits", "model.conditional=concat"),
      "model.conditional")
def _conditional_step(s: Setup):
    if s.conditional != "none" and not s.system.labels:
        return ConfigError("model.conditional", s.conditional, f"none with {s.system_option}",
                           f"{s.system_option}'s training step does not pass class labels; class-conditional models "
                           "train with Algorithm 1 or MIX+GAN (model=mlp|dcgan|resnet).")


@rule("AC-GAN with a step that cannot train its class head", ("model.conditional=acgan", "mixture.generators=2"),
      "model.conditional")
def _acgan_step(s: Setup):
    if s.conditional == "acgan" and s.system.acgan:
        return ConfigError("model.conditional", "acgan", f"concat or projection with {s.system_option}",
                           s.system.acgan)


@rule("a trick that draws or judges without labels, in a class-conditional run",
      ("model.conditional=concat", "tricks.feature_matching=true"), "tricks.feature_matching")
def _conditional_tricks(s: Setup):
    if s.conditional == "none":
        return None
    for part in s.tricks.parts:
        blocked = sorted(part.hooks() & set(UNLABELLED_HOOKS))
        if blocked:
            return ConfigError(f"tricks.{part.switch}", getattr(part, part.switch),
                               f"{part.off()} with model.conditional={s.conditional}",
                               f"tricks.{part.switch} {UNLABELLED_HOOKS[blocked[0]]}, which would judge or draw "
                               "samples without their class labels.")


@rule("class labels with data that has none", ("model=mlp", "dataset=ring", "model.conditional=acgan"),
      "model.conditional")
def _conditional_data(s: Setup):
    labels = getattr(s.source, "labels", None)
    if s.conditional != "none" and (labels is None or s.source.num_classes < 2):
        return ConfigError("model.conditional", s.conditional, f"none with dataset={s.spec.name}",
                           f"dataset={s.spec.name} carries no class labels (labelled sets: {LABELLED_SETS}).")


@rule("batch norm in D under a per-sample penalty", ("dataset=digits", "regularizer=gp", "model.d_norm=batch"),
      "model.d_norm")
def _batch_norm_penalty(s: Setup):
    if s.d_norm == "batch" and s.regularizer.caps.forbids_batch_norm:
        return ConfigError("model.d_norm", "batch", f"layer, none or auto with regularizer={s.regularizer.name}",
                           "A per-sample gradient penalty is meaningless through batch norm, which mixes the samples "
                           "of a batch.")


@rule("an image-only part with point data", ("model=mlp", "dataset=ring", "tricks.diffaug=translation"),
      "tricks.diffaug")
def _images_only(s: Setup):
    if s.spec.is_image:
        return None
    for part in s.tricks.parts:
        if part.caps.images_only:
            return ConfigError(f"tricks.{part.switch}", getattr(part, part.switch), '"" (off) with point data'
                               if isinstance(getattr(part, part.switch), str) else f"{part.off()} with point data",
                               f"tricks.{part.switch} transforms images; dataset={s.spec.name} holds points of shape "
                               f"{s.spec.shape}.")
    if s.regularizer.caps.images_only:
        return ConfigError("regularizer", s.regularizer.name, f"a regularizer for point data with "
                                                              f"dataset={s.spec.name}",
                           f"regularizer={s.regularizer.name} augments images; dataset={s.spec.name} holds points.")


@rule("a trick whose hook the step does not run", ("model=lapgan", "dataset=digits", "tricks.feature_matching=true"),
      "tricks.feature_matching")
def _hooks_honoured(s: Setup):
    refused = dict(s.system.refused_tricks)
    for part in s.tricks.parts:
        missing = sorted(part.hooks() - set(s.system.hooks))
        if missing or part.name in refused:
            return ConfigError(f"tricks.{part.switch}", getattr(part, part.switch), f"{part.off()} with "
                                                                                    f"{s.system_option}",
                               refused.get(part.name) or f"{s.system.summary} This trick acts through "
                                                         f"{', '.join(missing)}, which that step does not run.")


@rule("instance noise's end with a constant σ",
      ("tricks.instance_noise=0.1", "tricks.instance_noise_schedule=constant", "tricks.instance_noise_until=0.5"),
      "tricks.instance_noise_until")
def _noise_until(s: Setup):
    until = s.tricks.instance_noise_until
    if s.tricks.instance_noise_schedule == "constant" and until != 1.0:
        return ConfigError("tricks.instance_noise_until", until,
                           "1.0 with tricks.instance_noise_schedule=constant (σ never falls)")


@rule("ADA on DiffAugment's transforms without any", ("tricks.ada_target=0.6", "tricks.ada_pipeline=diffaug"),
      "tricks.ada_pipeline")
def _ada_on_diffaug(s: Setup):
    if s.tricks.ada_pipeline == "diffaug" and not s.tricks.diffaug:
        return ConfigError("tricks.ada_pipeline", "diffaug", 'auto or bgc with tricks.diffaug="" (no transforms)',
                           "ADA would adapt the probability of the DiffAugment transforms: choose them, e.g. "
                           "tricks.diffaug=[color,translation,cutout], or let ADA run its own bgc pipeline.")


@rule("ADA's bgc pipeline beside DiffAugment's transforms",
      ("tricks.diffaug=translation", "tricks.ada_target=0.6", "tricks.ada_pipeline=bgc"), "tricks.ada_pipeline")
def _bgc_beside_diffaug(s: Setup):
    if s.tricks.ada_pipeline == "bgc" and s.tricks.diffaug:
        return ConfigError("tricks.ada_pipeline", "bgc", f"auto or diffaug with tricks.diffaug={s.tricks.diffaug}",
                           "ADA gates one pipeline with its p: either the bgc pipeline (tricks.diffaug=\"\") or the "
                           "chosen DiffAugment transforms, not both at once.")


@rule("ADA's controller and a fixed augmentation probability", ("tricks.ada_target=0.6", "tricks.augment_p=0.3"),
      "tricks.augment_p")
def _ada_and_fixed_p(s: Setup):
    if s.tricks.ada_target and s.tricks.augment_p:
        return ConfigError("tricks.augment_p", s.tricks.augment_p, "0 with tricks.ada_target (or ada_target=0)",
                           "ADA's controller sets the probability p itself; tricks.augment_p fixes (or schedules) it "
                           "instead: choose one.")


@rule("minibatch discrimination under a per-sample penalty",
      ("dataset=digits", "regularizer=gp", "tricks.minibatch_discrimination=true"), "tricks.minibatch_discrimination")
def _minibatch_penalty(s: Setup):
    if s.trick("minibatch_discrimination") and s.regularizer.caps.input_gradients:
        return ConfigError("tricks.minibatch_discrimination", True, f"false with regularizer={s.regularizer.name}",
                           "Minibatch features make D's output depend on the whole batch, so a per-sample gradient "
                           "penalty is meaningless.")


@rule("a minibatch larger than the training set", ("dataset=digits", "model.width=8", "train.batch_size=100000"),
      "train.batch_size")
def _batch_beyond_the_set(s: Setup):
    size, batch = s.source.size, s.settings.train.batch_size
    if size is not None and batch * s.processes > size:
        per = f" per process × {s.processes} processes" if s.processes > 1 else ""
        return ConfigError("train.batch_size", batch, f"at most {size // s.processes} (dataset={s.spec.name} holds "
                                                      f"{size} training samples{per})",
                           "a larger minibatch would hold the same images more than once.")


@rule("packs that do not divide the batch", ("tricks.pack=3",), "tricks.pack")
def _pack_batch(s: Setup):
    pack, batch = s.tricks.pack, s.settings.train.batch_size
    if pack > 1 and batch % pack:
        return ConfigError("tricks.pack", pack, f"a divisor of train.batch_size={batch}",
                           "D judges packs of m samples, so every minibatch must split into whole packs.")


@rule("packing with minibatch discrimination", ("tricks.pack=2", "tricks.minibatch_discrimination=true"),
      "tricks.pack")
def _pack_minibatch(s: Setup):
    if s.tricks.pack > 1 and s.trick("minibatch_discrimination"):
        return ConfigError("tricks.pack", s.tricks.pack, "1 with tricks.minibatch_discrimination=true",
                           "Both change what D judges beyond one sample; PacGAN is the alternative to minibatch "
                           "discrimination, not an addition to it.")


@rule("consistency regularization with packing", ("regularizer=cr", "tricks.pack=2"), "tricks.pack")
def _pack_per_sample_augmentation(s: Setup):
    if s.tricks.pack > 1 and s.regularizer.caps.augments_per_sample:
        return ConfigError("tricks.pack", s.tricks.pack, f"1 with regularizer={s.regularizer.name}",
                           "CR augments what D judges; a pack of m samples would share one draw, and its colour "
                           "transforms would average over the m different samples in it.")


@rule("unrolling with feature matching", ("tricks.unroll_steps=2", "tricks.feature_matching=true"),
      "tricks.feature_matching")
def _unroll_feature_matching(s: Setup):
    unroll = s.trick("unroll")
    if unroll and s.trick("feature_matching"):
        return ConfigError("tricks.feature_matching", True, f"false with {unroll.option()}",
                           "Feature matching replaces the adversarial G loss that unrolling differentiates.")


@rule("unrolling through a gradient penalty", ("dataset=digits", "regularizer=gp", "tricks.unroll_steps=2"),
      "tricks.unroll_steps")
def _unroll_penalty(s: Setup):
    unroll = s.trick("unroll")
    if unroll and s.regularizer.caps.input_gradients:
        return ConfigError("tricks.unroll_steps", unroll.unroll_steps, f"0 with regularizer={s.regularizer.name}",
                           "The unrolled copy of D models its optimiser step, not a gradient penalty (through K "
                           "penalty steps G's gradient would need third derivatives).")


@rule("unrolling an optimiser it does not model", ("tricks.unroll_steps=2", "optimizer.d._target_=torch.optim.AdamW"),
      "optimizer.d._target_")
def _unroll_optimizer(s: Setup):
    from gan_lab.tricks import unroll

    part = s.trick("unroll")
    if not part:
        return None
    optimizer = s.optimizer_d
    kind = type(optimizer)
    if kind not in unroll.MODELLED:
        return ConfigError("optimizer.d._target_", kind.__name__, f"torch.optim.Adam, RMSprop or SGD with "
                                                                  f"{part.option()}",
                           "The unrolled copy of D steps with a differentiable copy of D's optimiser, written for "
                           "those three.")
    if unroll.unmodelled(optimizer):
        key, value = next(iter(unroll.unmodelled(optimizer).items()))
        return ConfigError(f"optimizer.d.{key}", value, f"{'false' if isinstance(value, bool) else 0} with "
                                                        f"{part.option()}",
                           f"The unrolled copy of D steps with a differentiable {kind.__name__} that models "
                           f"{unroll.models(optimizer)} only: it would ignore {key}.")


@rule("a stateful regularizer with a step of many discriminators",
      ("model=lapgan", "dataset=digits", "regularizer=lecam"), "regularizer")
def _one_critic(s: Setup):
    if s.regularizer.caps.one_critic and not s.system.one_critic:
        return ConfigError("regularizer", s.regularizer.name, f"one that keeps no state about D with "
                                                              f"{s.system_option}",
                           f"regularizer={s.regularizer.name} tracks one D's outputs across updates; "
                           f"{s.system.summary}")


@rule("a loss whose G step reads real logits, with a step that computes none",
      ("model=lapgan", "dataset=digits", "loss=rgan"), "loss")
def _real_logits_in_g(s: Setup):
    if s.loss.caps.g_needs_real and not s.system.real_logits_in_g:
        return ConfigError("loss", s.loss.name, f"a loss whose G step reads only fake logits with {s.system_option}",
                           f"loss={s.loss.name} needs D's outputs on real data in G's step, which this model's "
                           "training step does not compute.")


# The later entries (post-hoc samplers, the networks once built, what keeps a step eager; then StyleGAN2-ADA's
# training parts) register here, after these, in this order.
from gan_lab.rulebook_late import SAMPLERS, sampler_refusal  # noqa: E402, F401
from gan_lab.rulebook_stylegan import SMALL_STYLEGAN2  # noqa: E402, F401
