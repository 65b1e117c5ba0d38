// Softmax regression on the node's private data, for federated learning: the model goes to the
// data, the data stays. `train` starts from the weights the coordinator sent with the code
// (ferry.input), runs mini-batch SGD over the node's data set for some epochs, and returns the
// new weights with the number of samples they were trained on. The data set is read only
// through ferry.data_read, in batches, from the node it runs on (a resource bound by type); the
// guest imports nothing that reaches the network.
//
// A row of the data set: 64 pixels (0 to 16, an 8x8 digit) and its label (0 to 9).
#include "ferry.h"

#define FEATURES 64
#define CLASSES 10
#define ROW (FEATURES + 1)
#define PARAMETERS (FEATURES * CLASSES + CLASSES)
#define MAX_ROWS 4096

typedef unsigned int u32;

/// The answer: the sample count, then the weights (row-major 64x10), then the biases.
static struct {
    u32 samples;
    float weights[PARAMETERS];
} result;

static unsigned char rows[MAX_ROWS * ROW];
static int order[MAX_ROWS];

static u32 state;
static u32 next_random(void) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

static float exp_approx(float x) {
    // exp by range reduction: e^x = 2^k * e^r, |r| <= ln2/2, and a short series for e^r.
    if (x < -80) return 0;
    if (x > 80) x = 80;
    float k = (float)(int)(x * 1.4426950409f + (x >= 0 ? 0.5f : -0.5f));
    float r = x - k * 0.6931471806f;
    float e = 1 + r * (1 + r * (0.5f + r * (0.16666667f + r * (0.041666668f + r * 0.0083333338f))));
    union { float f; u32 u; } scale = {.u = (u32)((int)k + 127) << 23};
    return e * scale.f;
}

/// Trains for `epochs` passes over the node's data set "digits" with learning rate
/// `lr_micro` / 1e6 and mini-batches of `batch`, rows shuffled by `seed`. Returns the address of
/// the result (4 + 2600 bytes).
FERRY_EXPORT("train") int train(int epochs, int lr_micro, int batch, int seed) {
    float *w = result.weights;
    int have = ferry_input(w, sizeof result.weights);
    if (have != (int)sizeof result.weights)
        for (int i = 0; i < PARAMETERS; i++) w[i] = 0;
    static const char name[] = "digits";
    int count = 0;
    for (;;) {
        int got = ferry_data_read(name, sizeof name - 1, count * ROW, rows + count * ROW,
                                  (MAX_ROWS - count) * ROW < 64 * ROW ? (MAX_ROWS - count) * ROW : 64 * ROW);
        if (got <= 0) break;
        count += got / ROW;
        if (count >= MAX_ROWS) break;
    }
    result.samples = (u32)count;
    if (count == 0) return (int)(unsigned long)&result;
    float lr = (float)lr_micro / 1e6f;
    if (batch < 1) batch = 1;
    state = (u32)seed * 2654435761u + 1;
    for (int i = 0; i < count; i++) order[i] = i;
    static float gradient[PARAMETERS];
    for (int epoch = 0; epoch < epochs; epoch++) {
        for (int i = count - 1; i > 0; i--) {
            int j = (int)(next_random() % (u32)(i + 1));
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (int start = 0; start < count; start += batch) {
            int end = start + batch < count ? start + batch : count;
            for (int i = 0; i < PARAMETERS; i++) gradient[i] = 0;
            for (int n = start; n < end; n++) {
                const unsigned char *row = rows + order[n] * ROW;
                // Only the pixels that are not blank: a blank one adds nothing to a logit or a
                // gradient (about half of each digit), and the sums keep their order, so the
                // result is the dense computation's, bit for bit.
                int active[FEATURES], used = 0;
                float x[FEATURES], z[CLASSES], error[CLASSES], most = -1e30f, sum = 0;
                for (int f = 0; f < FEATURES; f++) {
                    if (row[f] == 0) continue;
                    active[used] = f;
                    x[used] = row[f] / 16.0f;
                    used++;
                }
                for (int c = 0; c < CLASSES; c++) z[c] = w[FEATURES * CLASSES + c];
                for (int k = 0; k < used; k++) {
                    const float *weights = w + active[k] * CLASSES;
                    for (int c = 0; c < CLASSES; c++) z[c] += x[k] * weights[c];
                }
                for (int c = 0; c < CLASSES; c++)
                    if (z[c] > most) most = z[c];
                for (int c = 0; c < CLASSES; c++) {
                    z[c] = exp_approx(z[c] - most);
                    sum += z[c];
                }
                for (int c = 0; c < CLASSES; c++) {
                    error[c] = z[c] / sum - (row[FEATURES] == c ? 1.0f : 0.0f);
                    gradient[FEATURES * CLASSES + c] += error[c];
                }
                for (int k = 0; k < used; k++) {
                    float *slope = gradient + active[k] * CLASSES;
                    for (int c = 0; c < CLASSES; c++) slope[c] += error[c] * x[k];
                }
            }
            float step = lr / (float)(end - start);
            for (int i = 0; i < PARAMETERS; i++) w[i] -= step * gradient[i];
        }
    }
    return (int)(unsigned long)&result;
}
