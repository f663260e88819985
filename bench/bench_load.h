// bench_load.h — `gptoss bench load`: how fast an archive's weights reach the GPU, beside the two
// ceilings measured in the same run: a pinned host-to-device copy (the link) and a plain read of
// the same file with the same threads (the page cache or the disk).
#pragma once

namespace CLI {
class App;
}

namespace gptoss::cli {

void add_load_command(CLI::App& bench);

}  // namespace gptoss::cli
