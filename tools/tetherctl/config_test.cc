#include "tools/tetherctl/config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace tether::tetherctl {
namespace {

std::string TempDir() {
  static int counter = 0;
  std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/config-", ++counter);
  mkdir(dir.c_str(), 0700);
  return dir;
}

TEST(ConfigPathTest, FlagThenTetherConfigThenXdgThenHome) {
  Environment env{"/env/tether.conf", "/xdg", "/home/alice"};
  EXPECT_EQ(*ConfigPath("/flag.conf", env), "/flag.conf");
  EXPECT_EQ(*ConfigPath("", env), "/env/tether.conf");
  env.tether_config.clear();
  EXPECT_EQ(*ConfigPath("", env), "/xdg/tether/tetherctl.conf");
  env.xdg_config_home.clear();
  EXPECT_EQ(*ConfigPath("", env), "/home/alice/.config/tether/tetherctl.conf");
  env.home.clear();
  EXPECT_EQ(ConfigPath("", env).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ConfigTest, SaveCreatesPrivateFileAndDirectoriesThatLoadReads) {
  const std::string path = absl::StrCat(TempDir(), "/a/b/tetherctl.conf");
  Config config;
  config.cloud = "cloud.example:8443";
  config.ca_file = "/etc/tether/ca.pem";
  config.token = crypto::SecretBytes("tt_secret");
  ASSERT_TRUE(SaveConfig(path, config).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(path.substr(0, path.rfind('/')).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);

  absl::StatusOr<Config> loaded = LoadConfig(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->cloud, "cloud.example:8443");
  EXPECT_EQ(loaded->ca_file, "/etc/tether/ca.pem");
  EXPECT_FALSE(loaded->insecure);
  EXPECT_EQ(loaded->token.view(), "tt_secret");
}

TEST(ConfigTest, LoadRefusesFileOthersCanRead) {
  const std::string path = absl::StrCat(TempDir(), "/tetherctl.conf");
  Config config;
  config.cloud = "127.0.0.1:1";
  config.insecure = true;
  config.token = crypto::SecretBytes("tt_secret");
  ASSERT_TRUE(SaveConfig(path, config).ok());
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  absl::StatusOr<Config> loaded = LoadConfig(path);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(loaded.status().message().find("0644"), absl::string_view::npos) << loaded.status();
}

TEST(ConfigTest, MissingFileMeansNotLoggedIn) {
  absl::StatusOr<Config> loaded = LoadConfig(absl::StrCat(TempDir(), "/absent.conf"));
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_NE(loaded.status().message().find("tetherctl login"), absl::string_view::npos);
}

TEST(ConfigTest, ParseRefusesMalformedEntries) {
  const char* cases[] = {
      "cloud a:1\ninsecure true\n",                      // no token
      "token t\ninsecure true\n",                        // no cloud
      "cloud a:1\ntoken t\n",                            // neither ca nor insecure
      "cloud a:1\ntoken t\ninsecure maybe\n",            // bad boolean
      "cloud a:1\ntoken t\ninsecure true\ncolour red\n",  // unknown key
      "cloud\ntoken t\ninsecure true\n",                 // no value
  };
  for (const char* text : cases) {
    SCOPED_TRACE(text);
    EXPECT_EQ(ParseConfig(crypto::SecretBytes(text)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  absl::StatusOr<Config> ok =
      ParseConfig(crypto::SecretBytes("# comment\n\ncloud a:1\ninsecure true\ntoken  t\n"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->token.view(), "t");
}

}  // namespace
}  // namespace tether::tetherctl
