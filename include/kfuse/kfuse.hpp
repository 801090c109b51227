// kfuse: fused GPU operations with a CPU path that gives the same answer.
// The umbrella header: include this, link kfuse::kfuse_cuda.
#pragma once

#include "kfuse/context.hpp"
#include "kfuse/contrastive.hpp"
#include "kfuse/error.hpp"
#include "kfuse/fuse.hpp"
#include "kfuse/gauss.hpp"
#include "kfuse/moe.hpp"
#include "kfuse/precision.hpp"
#include "kfuse/version.hpp"
#include "kfuse/view.hpp"
