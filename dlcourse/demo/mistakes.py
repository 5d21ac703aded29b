"""One realistic wrong answer per worksheet, for the demo class's student "dev".

worksheet -> what the mistake is, the answers it replaces, and the score of each test cell
it loses (every other test cell keeps full marks), a share of the points where the grader gives
partial credit.
"""

MISTAKES: dict[str, dict] = {
    "ws01_tensors": {
        "why": "adds the channel axis in front of height and width (NCHW), not last (NHWC); "
        "normalises one channel at a time in a Python loop over x.shape[-1], right in eager "
        "mode but not inside tf.function (partial credit: 2 of the test's 3 checks)",
        "answers": {
            "ex_to_image_batch": "def to_image_batch(images):\n"
            "    pixels = tf.cast(images, tf.float32) / 255.0\n"
            "    return tf.expand_dims(pixels, axis=1)\n",
            "ex_normalize_images": "def normalize_images(x):\n"
            "    channels = []\n"
            "    for c in range(x.shape[-1]):\n"
            "        xc = x[..., c]\n"
            "        channels.append((xc - tf.reduce_mean(xc)) / tf.math.reduce_std(xc))\n"
            "    return tf.stack(channels, axis=-1)\n",
        },
        "scores": {"test_to_image_batch": 0, "test_normalize_images": 2.0},
    },
    "ws02_quadratic_perceptron": {
        "why": "reshapes the weights into a column and uses tf.matmul, so the perceptron "
        "returns shape (n, 1) instead of (n,); drops the minus sign when solving the boundary "
        "equation for x2",
        "answers": {
            "ex_perceptron": "def perceptron(x, w0, w):\n"
            "    x = tf.convert_to_tensor(x, tf.float32)\n"
            "    w = tf.reshape(tf.convert_to_tensor(w, tf.float32), (-1, 1))\n"
            "    return tf.sigmoid(w0 + tf.matmul(x, w))\n",
            "ex_boundary": "def boundary_x2(x1, w0, w):\n"
            "    return (w0 + w[0] * np.asarray(x1)) / w[1]\n",
        },
        "scores": {"test_perceptron": 0, "test_boundary": 0},
    },
    "ws03_gradient_descent": {
        "why": "squares the mean error instead of averaging the squared errors, and takes the "
        "log of tf.nn.softmax, which is right for the visible small logits but gives nan "
        "for logits like [1000, 0, -1000]",
        "answers": {
            "ex_mse": "def mse(y_true, y_pred):\n"
            "    return tf.reduce_mean(tf.convert_to_tensor(y_true) - y_pred) "
            "** 2\n",
            "ex_cce": "def cce_from_logits(y, logits):\n"
            "    p = tf.nn.softmax(logits)\n"
            "    return -tf.reduce_mean(tf.reduce_sum(y * tf.math.log(p), "
            "axis=-1))\n",
        },
        "scores": {"test_mse": 0, "test_cce": 0},
    },
    "ws04_mnist_classifiers": {
        "why": "divides each batch by its own brightest pixel instead of 255 (right for the "
        "visible MNIST batch, whose maximum is 255, wrong for a batch of faint digits), "
        "and hard-codes Dense(128) in the MLP instead of using the `hidden` argument",
        "answers": {
            "ex_preprocess": "def preprocess(x, y):\n"
            "    x = (x / x.max()).astype(np.float32)\n"
            "    y = np.asarray(y).reshape(-1)\n"
            "    return x, y\n",
            "ex_mlp": "def build_mlp(hidden=128, dropout=0.2):\n"
            "    return keras.Sequential([\n"
            "        keras.Input((28, 28)),\n"
            "        keras.layers.Flatten(),\n"
            '        keras.layers.Dense(128, activation="relu"),\n'
            "        keras.layers.Dropout(dropout),\n"
            "        keras.layers.Dense(10),\n"
            "    ])\n",
        },
        "scores": {"test_preprocess": 0, "test_mlp": 0},
    },
    "ws05_cnn": {
        "why": "models 'same' as padding k // 2 on each side: right for odd kernels (the "
        "visible checks), one too many for even kernels (hidden checks)",
        "answers": {
            "ex_conv_output_size": "def conv_output_size(n, k, stride=1, "
            'padding="valid"):\n'
            '    p = k // 2 if padding == "same" else 0\n'
            "    return (n + 2 * p - k) // stride + 1\n"
        },
        "scores": {"test_conv_output_size": 0},
    },
    "ws06_autoencoder": {
        "why": "puts a ReLU on the code layer (the visible shape and parameter checks pass, but "
        "the code can no longer be negative), and sums the squared errors over the "
        "pixels before averaging over the images, i.e. returns mean ||x - x_hat||^2 "
        "instead of Keras's per-pixel MSE",
        "answers": {
            "ex_encoder": "def build_encoder(latent_dim):\n"
            "    return keras.Sequential(\n"
            "        [\n"
            "            keras.Input(shape=(784,)),\n"
            '            keras.layers.Dense(256, activation="relu"),\n'
            "            keras.layers.Dense(latent_dim, "
            'activation="relu"),\n'
            "        ]\n"
            "    )\n",
            "ex_mse": "def reconstruction_mse(x, x_hat):\n"
            "    x = np.asarray(x, np.float64)\n"
            "    x_hat = np.asarray(x_hat, np.float64)\n"
            "    per_image = np.sum((x - x_hat) ** 2, axis=-1)\n"
            "    return float(np.mean(per_image))\n",
        },
        "scores": {"test_encoder": 0, "test_mse": 0},
    },
    "ws07_generalisation": {
        "why": "batches first and shuffles afterwards, so every epoch has a new order of batches "
        "but each batch still holds the same neighbours; and returns the first epoch after which "
        "the validation loss goes up (a local minimum) instead of the epoch of the lowest one",
        "answers": {
            "ex_pipeline": "def make_pipeline(x, y, batch_size, seed):\n"
            "    def scale(images, labels):\n"
            "        return tf.cast(images, tf.float32) / 255.0, labels\n"
            "\n"
            "    ds = tf.data.Dataset.from_tensor_slices((x, y))\n"
            "    ds = ds.batch(batch_size).shuffle(len(x), seed=seed)\n"
            "    return ds.map(scale).prefetch(tf.data.AUTOTUNE)\n",
            "ex_overfit": "def overfitting_epoch(history):\n"
            '    val = history["val_loss"]\n'
            "    for i in range(len(val) - 1):\n"
            "        if val[i + 1] > val[i]:\n"
            "            return i + 1\n"
            "    return None\n",
        },
        "scores": {"test_pipeline": 0, "test_overfit": 0},
    },
}
