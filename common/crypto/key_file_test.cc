#include "common/crypto/key_file.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace tether::crypto {
namespace {

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

int Mode(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return st.st_mode & 07777;
}

TEST(KeyFileTest, WritesMode0600AndReadsBack) {
  std::string path = TempPath("roundtrip.key");
  umask(0);  // even a permissive umask must not widen the mode
  ASSERT_TRUE(WriteSecretFile(path, SecretBytes("key bytes"), false).ok());
  umask(022);
  EXPECT_EQ(Mode(path), 0600);
  auto data = ReadSecretFile(path);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->view(), "key bytes");
}

TEST(KeyFileTest, RefusesToOverwriteUnlessAsked) {
  std::string path = TempPath("existing.key");
  ASSERT_TRUE(WriteSecretFile(path, SecretBytes("first"), false).ok());
  EXPECT_EQ(WriteSecretFile(path, SecretBytes("second"), false).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ReadSecretFile(path)->view(), "first");
  ASSERT_TRUE(WriteSecretFile(path, SecretBytes("second"), true).ok());
  EXPECT_EQ(ReadSecretFile(path)->view(), "second");
}

TEST(KeyFileTest, LeavesNoTemporaryFilesBehind) {
  std::string dir = TempPath("clean");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  ASSERT_TRUE(WriteSecretFile(dir + "/a.key", SecretBytes("a"), false).ok());
  EXPECT_FALSE(WriteSecretFile(dir + "/a.key", SecretBytes("b"), false).ok());
  ASSERT_TRUE(WriteSecretFile(dir + "/a.key", SecretBytes("c"), true).ok());
  int entries = 0;
  DIR* d = opendir(dir.c_str());
  while (dirent* e = readdir(d)) {
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") ++entries;
  }
  closedir(d);
  EXPECT_EQ(entries, 1);
}

TEST(KeyFileTest, RefusesFilesReadableByOthers) {
  for (int mode : {0644, 0640, 0604, 0660, 0602}) {
    SCOPED_TRACE(mode);
    std::string path = TempPath("open.key");
    ASSERT_TRUE(WriteSecretFile(path, SecretBytes("k"), true).ok());
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
    auto data = ReadSecretFile(path);
    EXPECT_EQ(data.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_NE(data.status().message().find("chmod 600"), std::string::npos);
    EXPECT_EQ(CheckSecretFileMode(path).code(), absl::StatusCode::kPermissionDenied);
  }
}

TEST(KeyFileTest, MissingFileAndDirectoryAreClearErrors) {
  EXPECT_EQ(ReadSecretFile(TempPath("absent.key")).status().code(), absl::StatusCode::kNotFound);
  std::string dir = TempPath("a_dir");
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  EXPECT_EQ(ReadSecretFile(dir).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::crypto
