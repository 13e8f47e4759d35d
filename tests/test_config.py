import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gdlab

BASE = dict(optimizer="sgd", learning_rate=0.1, steps=10, eval_every=5)


def cfg(**kw):
    return gdlab.TrainConfig(**{**BASE, **kw})


@pytest.mark.parametrize("kw, match", [
    (dict(batch_size=0), r"batch_size must be an integer >= 1.*got 0"),
    (dict(batch_size=-3), r"batch_size must be an integer >= 1.*got -3"),
    (dict(steps=0), r"steps must be an integer >= 1, got 0"),
    (dict(steps=2.5), r"steps must be an integer >= 1, got 2.5"),
    (dict(learning_rate=0.0), r"learning_rate must be a finite number > 0 .*, got 0.0"),
    (dict(learning_rate=-1e-3), r"learning_rate must be a finite number > 0 .*, got -0.001"),
    (dict(learning_rate=math.inf), r"learning_rate must be a finite number > 0 .*, got inf"),
    (dict(learning_rate=math.nan), r"learning_rate must be a finite number > 0 .*, got nan"),
    (dict(learning_rate="fast"), r"learning_rate must be a finite number > 0.*'fast'"),
    (dict(optimizer="adagradx"), r"unknown optimizer 'adagradx'; valid: sgd, momentum"),
    (dict(sampling="bootstrap"), r"unknown sampling 'bootstrap'; valid: with_replacement, epoch"),
    (dict(sampling_rng="mt"), r"unknown sampling_rng 'mt'; valid: hash, threefry"),
    (dict(eval_every_seconds=1.0), r"exactly one evaluation schedule.*got both"),
    (dict(eval_every=0), r"eval_every must be an integer >= 1, got 0"),
    (dict(eval_every=None, eval_every_seconds=-2.0),
     r"eval_every_seconds must be a finite number > 0, got -2.0"),
    (dict(eval_every=None, eval_every_seconds=0), r"eval_every_seconds must be .* got 0"),
    (dict(chunk_steps=0), r"chunk_steps must be an integer >= 1, got 0"),
])
def test_bad_config_raises_naming_the_value(kw, match):
    with pytest.raises(ValueError, match=match):
        cfg(**kw)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_named_optimizers_build(name):
    assert isinstance(cfg(optimizer=name).make_optimizer(), optax.GradientTransformation)


def test_optax_transformation_and_schedule_accepted():
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))
    assert cfg(optimizer=tx, learning_rate=None).make_optimizer() is tx
    schedule = optax.linear_schedule(0.1, 0.01, 100)
    assert cfg(learning_rate=schedule).describe()["learning_rate"].startswith("schedule")
    with pytest.raises(ValueError, match="needs a learning_rate"):
        cfg(learning_rate=None)


def test_config_is_frozen_and_describable():
    c = cfg()
    with pytest.raises(AttributeError):
        c.steps = 3
    assert c.describe()["optimizer"] == "sgd" and not c.eval_by_time
    assert cfg(eval_every=None, eval_every_seconds=0.5).eval_by_time


def test_defaults_make_a_valid_config_measuring_every_tenth_of_the_run():
    assert gdlab.TrainConfig().eval_every == 100
    assert gdlab.TrainConfig(steps=7).eval_every == 1
    assert gdlab.TrainConfig(eval_every_seconds=2.0).eval_every is None


@pytest.mark.parametrize("rate", [np.float32(0.1), np.float64(0.1), jnp.float32(0.1),
                                  jnp.asarray(0.1)])
def test_zero_d_numpy_and_jax_learning_rates_are_plain_floats(rate):
    assert cfg(learning_rate=rate).learning_rate == float(rate)
    assert isinstance(cfg(learning_rate=rate).learning_rate, float)


def test_every_bad_input_is_an_input_error_and_a_value_error():
    with pytest.raises(gdlab.InputError) as err:
        cfg(steps=0)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_hyperparameters_are_inputs_held_in_the_optimizer_state(name):
    config = cfg(optimizer=name, learning_rate=0.3)
    state = config.make_optimizer().init({"w": jnp.zeros(3)})
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.3)
    assert set(config.hyperparams()) == set(state.hyperparams) & set(config.hyperparams())
    assert config.hyperparams()["learning_rate"] == 0.3
