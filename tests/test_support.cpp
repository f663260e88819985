// test_support.cpp — anchors the gptoss_testref library (FP64 per-op references live in
// tests/reference/*.cpp and are added by the device-ops work).
namespace gptoss::test {
int test_support_anchor() { return 0; }
}  // namespace gptoss::test
